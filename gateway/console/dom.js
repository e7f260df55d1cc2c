// Building DOM nodes without HTML strings.
//
// Every piece of data the API returns reaches the page as a text node or an
// attribute value through h(), never through innerHTML, so an email or a
// payload cannot inject markup (and the CSP forbids inline script anyway).

/**
 * h("button", {type: "button", onclick: fn, "aria-label": "x"}, "text", child)
 * Attributes whose value is null, undefined or false are left out; true
 * sets an empty attribute; "on*" keys add event listeners; "dataset" takes
 * an object of data-* values.
 */
export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      node.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      for (const [name, item] of Object.entries(value)) node.dataset[name] = String(item);
    } else if (key === "value") {
      node.value = String(value);
    } else {
      node.setAttribute(key, value === true ? "" : String(value));
    }
  }
  append(node, children);
  return node;
}

/** Appends children (nodes, strings, numbers, nested arrays; null/false skipped). */
export function append(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Replaces every child of node. */
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

/** Text only screen readers read (e.g. "changed" beside a highlighted row). */
export function srOnly(text) {
  return h("span", { class: "sr-only" }, text);
}
