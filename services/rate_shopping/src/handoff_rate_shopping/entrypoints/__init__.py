"""Rate shopping's HTTP edge."""
