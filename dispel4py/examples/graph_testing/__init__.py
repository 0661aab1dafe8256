"""The classic dispel4py test workflows.

dispel4py simple dispel4py.examples.graph_testing.pipeline_test -i 5
"""
