"""Front-end (protocol §1): shapes, STFT→Mel wrapper, ISTFT round trip, SpeechBrain agreement."""
import torch
from speechbrain.processing.features import ISTFT, STFT, Filterbank, spectral_magnitude

from foundation.frontend import (
    istft,
    listenable_waveform,
    log1p_magnitude,
    log1p_mel,
    magnitude,
    mel_filterbank,
    stft,
    stft_to_mel,
)


def test_shapes_and_domains(clips):
    spec = stft(clips)
    assert spec.shape == (2, 431, 513) and spec.is_complex()
    assert log1p_magnitude(spec).shape == (2, 431, 513)
    assert log1p_mel(spec).shape == (2, 431, 80)
    assert (log1p_magnitude(spec) >= 0).all()


def test_stft_to_mel_wrapper_equals_mel_features(clips):
    spec = stft(clips)
    torch.testing.assert_close(stft_to_mel(log1p_magnitude(spec)), log1p_mel(spec), rtol=1e-4, atol=1e-5)
    x = log1p_magnitude(spec).requires_grad_()
    stft_to_mel(x).sum().backward()
    assert x.grad.abs().sum() > 0


def test_istft_round_trip(clips):
    torch.testing.assert_close(istft(stft(clips), clips.shape[1]), clips, rtol=0, atol=1e-5)


def test_listenable_waveform_of_all_ones_mask_is_the_input(clips):
    spec = stft(clips)
    audio = listenable_waveform(torch.ones(2, 431, 513), spec, clips.shape[1])
    assert audio.shape == clips.shape
    assert (audio - clips).abs().max() < 1e-4
    silent = listenable_waveform(torch.zeros(2, 425, 513), spec, clips.shape[1])
    assert silent.abs().max() < 1e-4


def test_agrees_with_speechbrain(clips):
    sb_stft = STFT(sample_rate=16000, win_length=23.2199, hop_length=11.6099, n_fft=1024)
    sb_spec = sb_stft(clips)  # (B, T, F, 2)
    ours = stft(clips)
    torch.testing.assert_close(torch.view_as_real(ours), sb_spec, rtol=1e-4, atol=1e-4)
    sb_mag = spectral_magnitude(sb_spec, power=0.5)
    torch.testing.assert_close(magnitude(ours), sb_mag, rtol=1e-4, atol=1e-4)
    sb_fbank = Filterbank(n_mels=80, n_fft=1024, sample_rate=16000, log_mel=False)
    torch.testing.assert_close(log1p_mel(ours), torch.log1p(sb_fbank(sb_mag)), rtol=1e-4, atol=1e-4)
    assert mel_filterbank().shape == (513, 80)
    sb_istft = ISTFT(sample_rate=16000, win_length=23.2199, hop_length=11.6099)
    torch.testing.assert_close(istft(ours, clips.shape[1]), sb_istft(sb_spec, sig_length=clips.shape[1]),
                               rtol=1e-4, atol=1e-4)
