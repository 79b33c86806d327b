"""`make bench` (bench/run.py): the project endpoint measured against its upstream directly."""
