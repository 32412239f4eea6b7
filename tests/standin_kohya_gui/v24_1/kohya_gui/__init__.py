"""Stand-in of the kohya_gui package (see class_basic_training.py)."""
