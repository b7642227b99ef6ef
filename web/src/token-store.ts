/**
 * The API token, where the user chose: localStorage ("remember me on this device") or sessionStorage (until the
 * tab closes). Never in a URL, never logged; it reaches the socket in the subprotocol list.
 */
const KEY = 'agent-chat.token';

export const tokenStore = {
  get(): string | null {
    return sessionStorage.getItem(KEY) ?? localStorage.getItem(KEY);
  },
  set(token: string, remember: boolean): void {
    this.clear();
    (remember ? localStorage : sessionStorage).setItem(KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(KEY);
    localStorage.removeItem(KEY);
  },
};
