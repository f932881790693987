"""Built-in convparity backends, each a pluggy plugin registered under the `convparity` entry point group."""
