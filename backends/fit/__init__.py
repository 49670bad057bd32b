"""Will it fit: the least memory each model needs at a context, predicted and checked (``abtop fit``)."""
