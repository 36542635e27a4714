"""Read models: one module per read model, each a set of pure handlers writing through a store
interface (``projections.store``); the stores themselves live in infra/."""
