"""kharness: does my kernel module build, load, work and unload cleanly?"""

__version__ = "0.1.0"
