import { render } from 'preact';
import { App } from './components/App.js';
import { lang } from './i18n.js';
import { AppStore } from './store.js';
import './styles.css';

document.documentElement.lang = lang === 'zh' ? 'zh-CN' : 'en';
const store = new AppStore();
render(<App store={store} />, document.getElementById('app')!);
void store.start();
