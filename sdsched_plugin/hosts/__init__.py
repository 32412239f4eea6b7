"""What the startup hook loads into a host program: the patching mechanism (``patching``) and one
module per host (``sd_scripts``, ``musubi``).

Imports only ``schedule``; never ``run``, ``commands`` or the CLI. Nothing here runs unless a host
module is imported (or the preview asks for the patch).
"""
