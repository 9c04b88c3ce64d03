"""The `lstmgen` command line (click)."""
