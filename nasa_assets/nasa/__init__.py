"""Talking to the NASA Image and Video Library: response parsing, renditions, the HTTP client."""
