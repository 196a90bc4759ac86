"""The front end: audio decoding, the Kaldi filterbank (NumPy and JAX), AST's feature extractor and
sliding windows. Imports nothing from the model or anything above it."""
