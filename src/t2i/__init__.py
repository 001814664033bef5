"""t2i: text to image with presampling, composition and several backends."""

__version__ = "0.1.0"
