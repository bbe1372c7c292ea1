"""Analysis methods from the segmentation field: splits, RFM, cohorts, clustering, propensity, personas."""
