"""Sigma rules: loading (pySigma), compilation to Python predicates, and stream evaluation."""
