"""The widgets of the abtop app, one per module."""
