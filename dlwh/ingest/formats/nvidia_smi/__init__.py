"""nvidia-smi: --query-gpu CSV logs and dmon output."""
