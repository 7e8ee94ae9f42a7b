"""What a result was computed with: versions of Python, the libraries and this code (for run.json)."""
from __future__ import annotations

import platform
import subprocess
import sys
from pathlib import Path

import captum
import numpy as np
import pandas as pd
import torch
import torchaudio


def versions() -> dict[str, str]:
    """Versions of Python, the platform, torch, torchaudio, captum, numpy, pandas and this
    code (short git commit when run from a checkout, with "+changes" when tracked files differ
    from it, else "unknown")."""
    here = Path(__file__).parent
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=here).stdout.strip()
    if commit and subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                                 text=True, cwd=here).stdout.strip():
        commit += "+changes"
    return {"python": sys.version.split()[0], "platform": platform.platform(), "torch": torch.__version__,
            "torchaudio": torchaudio.__version__, "captum": captum.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "code": commit or "unknown"}
