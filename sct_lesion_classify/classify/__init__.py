"""Classification: classifier inputs, inference, diagnosis composition and the diagnosis JSON."""
