"""convparity tests."""
