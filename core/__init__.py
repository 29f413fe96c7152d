"""Domain and engine of the concept-erasure service.

`core.erasure` is the torch engine (Adversarial Preservation on diffusers); everything else in
`core` is torch-free so that the API process stays light.
"""
