"""The speech library: audio, text, CTC models, decoding, selection, training. No Django."""
