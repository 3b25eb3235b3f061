"""Prints `module.Class.test_method|labels` for every test in one unittest file, for ctest.
Labels come from the harness decorators (@harness.slow, @harness.concurrency, @harness.packaging)."""
import ast
import pathlib
import sys

path = pathlib.Path(sys.argv[1])
tree = ast.parse(path.read_text())
for node in tree.body:
    if isinstance(node, ast.ClassDef):
        for item in node.body:
            if isinstance(item, ast.FunctionDef) and item.name.startswith("test_"):
                labels = [d.attr for d in item.decorator_list if isinstance(d, ast.Attribute) and d.attr in ("slow", "concurrency", "packaging")]
                print(f"{path.stem}.{node.name}.{item.name}|{','.join(['integration', *labels])}")
