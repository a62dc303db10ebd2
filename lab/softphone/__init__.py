"""baresip softphones for the lab (phones.py is the command line; it also runs as a plain script)."""
