// The tablet app's entry: styles, the <field-app> element, and the service worker that keeps it offline.
import './ui/app.css';
import './ui/app.js';

import { installBench } from './ui/bench.js';
import { registerServiceWorker } from './ui/updates.js';

registerServiceWorker();
installBench();
