"""Guest images: the initramfs kharness assembles for a target and kernel."""
