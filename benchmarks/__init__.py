"""Benchmarks that turn BRD Edge's two claims into tables: no added inference cost, and what BRD buys."""
