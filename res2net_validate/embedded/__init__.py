"""The embedded default: generated images and a stand-in checkpoint, built once per cache."""
