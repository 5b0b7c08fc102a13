"""placeholder"""


def run(**kwargs):
    raise NotImplementedError
