"""Analyses beyond the main tables: decoding latency (`latency`) and the rank of reward matrices (`rank`)."""
