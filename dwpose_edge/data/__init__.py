"""Files that ship with the package: sample photos, the embedded model and validation set."""
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent
