"""Reporting helpers: tables, comparisons with published results."""
