"""What the pages show, as plain functions from the data sources to Dash components and Plotly figures: one module
per page (live, search, user, overview) and what they share (common).

Callbacks in dashboard/pages stay thin: they read their inputs, call one function here and return its result, so
every view is testable without a browser. Chat text is untrusted: it only ever goes into components as a string
(rendered as text by React), never into Markdown or HTML.
"""
