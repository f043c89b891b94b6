"""Figures (matplotlib, Agg backend: no screen needed).

Each module draws one family of figures and returns the saved path. Import
``tgpcore.plots.style`` first to get the Agg backend and the house style.
"""
