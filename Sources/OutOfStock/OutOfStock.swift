// The out-of-stock domain.
