"""ipywidgets for segsql results; each also renders as text/html for saved notebooks."""
