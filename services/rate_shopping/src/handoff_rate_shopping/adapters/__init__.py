"""Rate shopping's adapters: catalogue files, carrier pricing (rate card, HTTP), history feed."""
