"""Audio classifiers: the ``Classifier`` contract, the registry, one module per classifier.

Importing this package registers the built-in classifiers: ``cnn14`` (the paper's) and ``ast``
(an Audio Spectrogram Transformer); ``hf:PATH_OR_ID`` loads pretrained ``transformers`` models.
"""
from classifiers import cnn14, ast, wav2vec2  # noqa: F401,I001  (registration side effects, in this order)
from classifiers.base import (Classifier, ClassifierPass, DomainModel, available_classifiers, classifier_class,
                              load_pretrained, register_classifier)

__all__ = ["Classifier", "ClassifierPass", "DomainModel", "available_classifiers", "classifier_class",
           "load_pretrained", "register_classifier"]
