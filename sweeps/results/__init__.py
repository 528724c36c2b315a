"""Results: curve and sweep diagnosis, plots and reports, exports, production training, reproduction."""
