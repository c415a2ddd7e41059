"""Renders the hookgate chart the way `helm template` would, for the small part of Helm's
template language the chart uses (no helm binary can be installed here):

  {{ .Values.a.b }}  {{ .Release.Name }}  {{ .Release.Namespace }}  {{ .Chart.AppVersion }}
  {{ X | default Y }}  {{ X | quote }}  {{ toYaml X | nindent N }}  {{ X | nindent N }}
  {{ .Files.Get "path" | nindent N }}  {{- if X }} ... {{- end }}  and {{- / -}} trimming.

Anything else in a template is an error, so the chart cannot quietly outgrow this renderer.
"""

import json
import os
import re
import sys

import yaml

ACTION = re.compile(r"\{\{(-?)\s*(.*?)\s*(-?)\}\}", re.S)


def lookup(path, context):
    value = context
    for part in path.lstrip(".").split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(f"no value at {path}")
        value = value[part]
    return value


def operand(token, context):
    if token.startswith('"'):
        return json.loads(token)
    if token.startswith("."):
        return lookup(token, context)
    raise ValueError(f"unsupported operand {token!r}")


def to_yaml(value):
    return yaml.safe_dump(value, default_flow_style=False, sort_keys=False).rstrip("\n")


def text(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def evaluate(expression, context):
    stages = [s.strip() for s in expression.split("|")]
    words = stages[0].split()
    if words[0] == "toYaml":
        value = to_yaml(operand(words[1], context))
    elif words[0] == ".Files.Get":
        value = open(os.path.join(context["_chart"], json.loads(words[1]))).read().rstrip("\n")
    elif len(words) == 1:
        value = operand(words[0], context)
    else:
        raise ValueError(f"unsupported expression {expression!r}")
    for stage in stages[1:]:
        name, *args = stage.split()
        if name == "default":
            value = value if value not in ("", None, False) else operand(args[0], context)
        elif name == "quote":
            value = json.dumps(text(value))
        elif name in ("nindent", "indent"):
            pad = " " * int(args[0])
            value = ("\n" if name == "nindent" else "") + "\n".join(
                pad + line if line else line for line in text(value).split("\n")
            )
        else:
            raise ValueError(f"unsupported function {name!r}")
    return text(value)


def truthy(value):
    return value not in (None, False, "", 0, [], {})


def render_template(source, context):
    out = []
    # Each frame: is this block being emitted?
    emitting = [True]
    position = 0
    for match in ACTION.finditer(source):
        literal = source[position:match.start()]
        if match.group(1):
            literal = literal.rstrip(" \t\n")
        if all(emitting):
            out.append(literal)
        position = match.end()
        if match.group(3):
            while position < len(source) and source[position] in " \t\n":
                position += 1
        action = match.group(2)
        if action.startswith("if "):
            emitting.append(all(emitting) and truthy(condition(action[3:], context)))
        elif action == "end":
            if len(emitting) == 1:
                raise ValueError("{{ end }} without {{ if }}")
            emitting.pop()
        elif action.startswith("/*"):
            continue
        elif all(emitting):
            out.append(evaluate(action, context))
    if len(emitting) != 1:
        raise ValueError("unclosed {{ if }}")
    out.append(source[position:])
    return "".join(out)


def condition(expression, context):
    """An `if` on a missing value is false, as in Helm."""
    try:
        return operand(expression.strip(), context)
    except KeyError:
        return None


def merge(base, override):
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            merge(base[key], value)
        else:
            base[key] = value
    return base


def render(chart_dir, release="hookgate", namespace="default", overrides=None):
    """The rendered manifests as a list of (template name, YAML documents)."""
    chart = yaml.safe_load(open(os.path.join(chart_dir, "Chart.yaml")))
    values = merge(yaml.safe_load(open(os.path.join(chart_dir, "values.yaml"))), overrides or {})
    context = {
        "Values": values,
        "Release": {"Name": release, "Namespace": namespace},
        "Chart": {"Name": chart["name"], "AppVersion": chart["appVersion"], "Version": chart["version"]},
        "_chart": chart_dir,
    }
    rendered = []
    templates = os.path.join(chart_dir, "templates")
    for name in sorted(os.listdir(templates)):
        output = render_template(open(os.path.join(templates, name)).read(), context)
        documents = [d for d in yaml.safe_load_all(output) if d]
        rendered.append((name, documents))
    return rendered


if __name__ == "__main__":
    for name, documents in render(sys.argv[1]):
        for document in documents:
            print(f"---\n# Source: {name}")
            print(to_yaml(document))
