"""Keras, the subject side. A Keras flavour (its backend today) is the axis that grows:
`backend` imports Keras once, `adapter` serves every backend, `worker` and `client`
run a flavour that cannot share this process."""
