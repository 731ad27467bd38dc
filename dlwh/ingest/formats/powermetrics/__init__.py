"""macOS powermetrics: text and plist output."""
