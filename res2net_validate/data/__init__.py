"""ImageNet val on disk: layouts and canonical labels, preprocessing, the image cache, the split."""
