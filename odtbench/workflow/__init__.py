"""Workflow planning and status: the workflow config's expansion and `odtbench status`."""
