"""Policy files: model, loading with file:line diagnostics, and the decision engine."""
