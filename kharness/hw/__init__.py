"""Driving hardware-facing interfaces of a module from the host: ioctl encoding, binary payloads,
and the guest agent that performs the system calls shell cannot do exactly."""
