"""Reports: tables beside the published figures, matplotlib figures and HTML token heatmaps."""
