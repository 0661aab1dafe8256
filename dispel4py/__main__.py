"""``python -m dispel4py <mapping> <workflow> ...``"""

from dispel4py.cli import console_main

if __name__ == "__main__":
    console_main()
