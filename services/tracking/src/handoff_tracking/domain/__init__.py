"""Tracking's pure domain: the shipment fold, exception detection, KPIs, update building."""
