"""The Asterisk (AMI) simulator's parts, one concern each: `protocol` (the AMI wire format),
`model` (channels and bridges), `media` (MixMonitor files), `server` (TCP sessions, login, event
fan-out), `pbx` (channel life cycle and simulated time), `calls` (scenario playback). The simulator
itself, with its AMI actions, is `lab.ami_sim.AmiSimulator`."""
