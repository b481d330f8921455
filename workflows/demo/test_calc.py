"""Tests for calc.py; run with `python3 -m unittest -q`."""

import unittest

import calc


class AddTest(unittest.TestCase):
    def test_adds(self):
        self.assertEqual(calc.add(2, 3), 5)


class FactorialTest(unittest.TestCase):
    def test_small_values(self):
        self.assertEqual(calc.factorial(0), 1)
        self.assertEqual(calc.factorial(1), 1)
        self.assertEqual(calc.factorial(5), 120)

    def test_negative_is_refused(self):
        with self.assertRaises(ValueError):
            calc.factorial(-1)


if __name__ == "__main__":
    unittest.main()
