"""Everything a person sees: the Textual app, the command line and headless output."""
