"""The joint inspection: one record per task merged from every department's tablets, and its report."""
