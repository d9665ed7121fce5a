"""test/libre_ext/tap.py  TAP output for the check_*.py scripts here"""


class Tap:
    """ok / not ok lines with their diagnostics, and the plan at the end"""

    def __init__(self):
        self.n = 0
        self.failed = 0

    def check(self, cond, name, diag=None):
        self.n += 1
        print(("ok %d - %s" if cond else "not ok %d - %s") % (self.n, name))
        if not cond:
            self.failed += 1
            self.note(diag or "")

    def note(self, text):
        for line in text.splitlines():
            print("# " + line)

    def done(self):
        """print the plan; the exit status: 1 if a check failed"""
        print("1..%d" % self.n)
        return 1 if self.failed else 0
